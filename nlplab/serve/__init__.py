"""`nlplab serve`: a trained model behind an OpenAI-compatible HTTP server (FastAPI + uvicorn) with batching and a
web playground. `nlplab.serve.app.create_app(predictor, model_id)` builds the app; `nlplab.serve.server.running(app)`
serves it on loopback in a background thread (tests, benchmarks). Nothing is imported here, so that the `nlplab`
command starts without loading the web stack."""
