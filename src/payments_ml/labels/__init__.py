"""The labels feed: fraud reports that arrive days after the transaction (`feed`)."""
