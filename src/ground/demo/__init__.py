"""The demo recipe's synthetic corpus (`corpus`) and its tiny pretrained parts (`llm`, `encoders`)."""
