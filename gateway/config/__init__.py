"""config.yaml parsed once into typed, frozen values (model), with every problem located (load)."""
