"""vos.io: everything between the engine and files, torch-free.

Frame sources (arrays, iterators, decord / PyAV video files, frame folders) and their bounded
prefetching; masks read from files (--first-mask, --masks DIR); what one vos.run writes (the output
folder, claimed in one step); the writers (overlay video, the app's playback, a background thread);
editors' exports (alpha and RGBA PNGs, matte video, soft alpha, RLE JSON, lost objects).
"""
