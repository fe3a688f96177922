"""Generic questions used to measure how similar *unrelated* questions look to a corpus.

At index time every probe is asked against the new index; the spread of their evidence is
stored in the manifest. "Not covered" then compares a question against that background, so
one calibrated rule works for a two-article corpus and for a thousand-paragraph one.
"""

import hashlib

PROBES: tuple[str, ...] = (
    "What is the capital of Australia?", "How do I make pancakes from scratch?",
    "Who painted the Mona Lisa?", "What is the tallest mountain in Africa?",
    "How many legs does a spider have?", "What time does the pharmacy open on Sunday?",
    "How do I change a flat tyre?", "What is the speed of light?",
    "Who invented the telephone?", "What is a good name for a puppy?",
    "How long should I boil an egg?", "Which planet is closest to the sun?",
    "What language is spoken in Brazil?", "How do I unclog a kitchen sink?",
    "What is the chemical symbol for gold?", "When was the printing press invented?",
    "How do vaccines train the immune system?", "What is the plot of Hamlet?",
    "Which team has won the most Champions League titles?", "How do I knit a scarf?",
    "What causes rainbows?", "How much water should a person drink per day?",
    "What is the difference between a virus and a bacterium?", "Who composed the Four Seasons?",
    "How do I repot a houseplant?", "What is the population of Canada?",
    "How does a refrigerator keep food cold?", "What is the best budget laptop for students?",
    "How do bees make honey?", "What is the longest river in South America?",
    "How do I write a cover letter?", "Who discovered penicillin?",
    "What is photosynthesis?", "How many players are on a rugby team?",
    "What is the recipe for guacamole?", "Why is the sky blue?",
    "How do I get rid of hiccups?", "What does a blockchain do?",
    "Which animal is the largest mammal?", "How do I start running as a beginner?",
    "What is the meaning of the word serendipity?", "How are diamonds formed?",
    "What is the main ingredient of hummus?", "How old is the universe?",
    "Who was the first person to walk on the moon?", "How do I clean a cast iron pan?",
    "What are the rules of chess castling?", "How does compound interest work?",
    "What is the freezing point of seawater?", "Which country has the most islands?",
    "How do I train a cat to use a litter box?", "What is the origin of Halloween?",
    "How do solar panels generate electricity?", "What is a haiku?",
    "How do I fix a squeaky door hinge?", "What do koalas eat?",
    "Which instrument has 88 keys?", "How is cheese made?",
    "What is the best way to store fresh herbs?", "Who wrote The Odyssey?",
    "How do earthquakes happen?", "What is the square root of 144?",
    "How do I set up a home Wi-Fi network?", "What are the symptoms of the flu?",
    "How far is Mars from Earth?", "What is origami?",
    "How do I grow tomatoes on a balcony?", "Who built the pyramids of Giza?",
    "What is the best time of year to visit Japan?", "How do noise-cancelling headphones work?",
)


def probes_key(model: str, encoder: str) -> str:
    """Identifies the probe vectors a model and encoder make of today's PROBES."""
    text = "\n".join([model, encoder, *PROBES])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
