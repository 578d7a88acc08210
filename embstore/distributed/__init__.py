"""Batch jobs over blocks of queries, run in this process or as Ray tasks, and exact search
over shards of the rows held by Ray actors (README, "Scaling out"). Ray is optional
(``pip install 'embstore[ray]'``) and imported only by ``ray_jobs`` and ``ray_shards``."""
