"""What intake reads from outside itself besides Kafka and Postgres (secrets)."""
