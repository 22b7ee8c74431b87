"""The one training engine every trainer in hepflows runs on (below every pillar)."""
