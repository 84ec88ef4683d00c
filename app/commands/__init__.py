"""One module per command; app.cli discovers them."""
