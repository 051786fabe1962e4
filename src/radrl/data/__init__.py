"""Data: dataset adapters and the synthetic generator produce ``Sample`` rows;
``instructions`` turns them into chat conversations."""
