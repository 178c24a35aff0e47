"""Threat-brief newsletter: content files in, an email digest out."""
