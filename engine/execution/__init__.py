"""Running: the queue, one run's steps, the connection to Ray, warm workers, and stopping a run."""
