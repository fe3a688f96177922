"""The bot's cogs, each a discord.py extension loaded in `BylineBot.setup_hook`; they share
bot/replies.py and never import each other."""
