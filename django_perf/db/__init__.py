"""PostgreSQL write and read paths the ORM leaves slow: bulk writes, batched reads, pools."""
