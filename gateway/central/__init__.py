"""The chain of stores: the store's sender of its journal, the centre's collector, the bridge."""
