"""The run engine: recipes in, items processed one by one, manifests out."""
