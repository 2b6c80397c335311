"""The simulated store: shoppers, radio, walks, the demo and its embedded broker."""
