"""Files in and out: field files, meshes, USD stages."""
