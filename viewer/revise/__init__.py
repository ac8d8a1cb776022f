"""Attribution-guided training, pure torch: find the channels that carry a behaviour
(relevance on a reference set, from the attribution-graph engine), then train only
them (``correct``), freeze them (``preserve``) or switch them off (``prune``), with the
baselines that tell whether that beats plain backpropagation."""
