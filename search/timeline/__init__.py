"""The customer history timeline: one row per thing that happened to a customer (a document filed, a letter
archived, a delivery event, later a complaint), written by outbox subscribers (`feed`) and read by
`search.history`. `backfill` rebuilds it from the events the outbox keeps."""
