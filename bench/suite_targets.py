"""The speed work's targets (the issue's numbers), shared by suite.py, which
judges a run against them, and suite_chart.py, which draws them."""

TARGET_TRAIN_RATIO = 0.75         # loom's training step at most this times PyTorch's
TARGET_INFERENCE_RATIO = 1.5      # loom's images/s at least this times PyTorch's ...
TARGET_INFERENCE_BATCH = 256      # ... at this batch size
TARGET_SEED_LATENCY_MS = 0.05     # the seed model's single-image predict
TARGET_CONV_PEAK = 0.70           # every conv layer's GFLOP/s at least this share of the run's GEMM peak
TARGET_SEED_RSS_MB = 100.0        # peak RSS while training the seed model
