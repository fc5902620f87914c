"""Domains: built-in shifts, benchmark loaders, custom folders and tables, pairing."""
from .catalog import DOMAINS, DomainSpec, list_domains, load_domain, resolve_data_dir
from .domain import DataError, Domain, stratified_split

__all__ = ["DOMAINS", "DomainSpec", "Domain", "DataError", "list_domains", "load_domain",
           "resolve_data_dir", "stratified_split"]
