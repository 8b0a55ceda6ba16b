"""Views into the network: Grad-CAM, guided backpropagation and activation maximisation."""
from .filters import best_reached_filters, maximize_filters, strongest_filters
from .faces import FaceExplanation, explain_faces
from .gradcam import Explanation, explain, grad_cam, guided_backprop, guided_grad_cam, model_input
from .layers import conv_layers, resolve_layer

__all__ = ["best_reached_filters", "maximize_filters", "strongest_filters", "FaceExplanation", "explain_faces",
           "Explanation", "explain", "grad_cam", "guided_backprop", "guided_grad_cam", "model_input", "conv_layers", "resolve_layer"]
