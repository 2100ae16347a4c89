"""DirEng, the human-facing assistant: intent routing, tools over the index, composed answers."""
