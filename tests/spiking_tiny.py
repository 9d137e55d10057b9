"""The settings of a tiny spiking run, shared by the test files of the spiking experiment."""

TINY = [
    "sizes=[784,24,16,10]",
    "steps_per_image=4",
    "train.images=120",
    "validation.images=60",
    "test.images=60",
    "chunk_images=40",
    "eta=0.01",
    'dtype="float64"',
]
