"""The DCRF peer's app: the same Series/Metric models, observed by DCRF."""
