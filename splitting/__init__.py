"""Graph partitioning, codecs, profiling and the latency model. Depends on torch and torchvision only."""
