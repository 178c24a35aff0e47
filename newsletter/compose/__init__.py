"""Compose and render: pure transformations, Library -> Issue -> Rendered -> message bytes."""
