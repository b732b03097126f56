"""Code generated from Asterisk's ARI Swagger specs (see ari/generate.py). Nothing hand-written."""
