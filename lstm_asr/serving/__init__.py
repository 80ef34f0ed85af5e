"""lstm-asr serve: live recognition in the browser (the page lives in static/, as package data)."""
