"""Attention layers on the gatlib operators: drop-in for PyG's, faster and leaner."""
from .conv import GATConv, GATv2Conv, GraphTransformerConv, TransformerConv
from .dense import DenseGraphAttention
from .linear import LinearGraphAttention
from .encoders import LapPEEncoder, RWSEEncoder
from .gps import GPSConv, GPSLayer
from .models import GraphClassifier, NodeClassifier
from .performer import PerformerAttention, RedrawProjection

__all__ = ["GATConv", "GATv2Conv", "GraphTransformerConv", "TransformerConv",
           "DenseGraphAttention", "LinearGraphAttention", "GPSLayer", "GPSConv",
           "PerformerAttention", "RedrawProjection", "LapPEEncoder", "RWSEEncoder",
           "NodeClassifier", "GraphClassifier"]
