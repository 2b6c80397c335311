"""The store's ops team's tools: doctor, firmware, forget."""
