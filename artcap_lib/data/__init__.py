"""Stage 01, data: the Artpedia schema, the polite image downloader, the demo collection, and the step that puts a
profile's collection into the run directory."""
