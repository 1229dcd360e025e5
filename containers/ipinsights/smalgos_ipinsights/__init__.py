"""SageMaker IP Insights (`ipinsights:1`): embeddings of entities and IP addresses whose dot
product says how usual an (entity, IP) pair is, learnt against generated negative pairs."""
