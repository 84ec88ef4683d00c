"""ctypes binding of Nelogica's ProfitDLL market-data API (spec §1-§7)."""
