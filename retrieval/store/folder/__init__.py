"""The folder backend: index generations in a directory on this machine."""
