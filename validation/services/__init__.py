"""Every write and state change of the validation domain. Each service takes the acting user,
runs in one transaction with its audit event, and queues follow-up work only on commit."""
