"""The JSON Schemas of the marketers' files, for editors."""
