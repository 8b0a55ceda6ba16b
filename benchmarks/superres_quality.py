"""How well a ``ferkit superres`` generator enlarges faces it never trained on, against plain upscaling.

    python benchmarks/superres_quality.py --generator runs/srgan [--split publictest] [--data ../shared/fer2013]

Every face of the split (48 px) is shrunk to 24 px (bicubic, antialiased, as the generator was trained) and
enlarged back by bicubic and bilinear upscaling and by the generator; the PSNR (dB, on [0, 1] pixels, mean over
faces) and the mean absolute pixel error (in grey levels, 0-255) of each against the real face are printed.
This measures 24 -> 48 px, where the truth is known; seed 001 applies the generator 48 -> 96 px, where it is not.
An adversarial generator may score below its pixel-loss start: it trades pixel accuracy for texture.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from ferkit.models.superres import SRGenerator, attach_generator, load_generator
from ferkit.training.superres import psnr, shrink

from common import parse_with_fer2013


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", required=True, help="a superres run folder or its generator.safetensors")
    parser.add_argument("--split", default="publictest")
    args, dataset = parse_with_fer2013(parser)
    faces = dataset.splits[args.split].images
    own = load_generator(args.generator)[1]  # the faces go in as the generator was trained to see them
    generator = SRGenerator().eval()
    header = attach_generator(generator, args.generator, own)
    mean, std = own.mean.reshape(()), own.std.reshape(())
    truth = torch.from_numpy(faces).float().unsqueeze(1) / 255
    results = {name: ([], []) for name in ("bicubic", "bilinear", "generator")}
    with torch.inference_mode():
        for start in range(0, len(truth), 256):
            real = truth[start:start + 256]
            small = shrink(real)
            estimates = {
                "bicubic": F.interpolate(small, scale_factor=2, mode="bicubic", align_corners=False),
                "bilinear": F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False),
                "generator": generator((small - mean) / std) * std + mean,
            }
            for name, estimate in estimates.items():
                results[name][0].append(psnr(estimate, real) * len(real))
                results[name][1].append(float((estimate.clamp(0, 1) - real).abs().mean()) * 255 * len(real))
    meta = header.get("meta", {})
    print(f"{args.split}: {len(truth)} faces, 24 -> 48 px; generator trained {meta.get('epochs')} epochs "
          f"({meta.get('mse_epochs')} on the pixel loss alone, adversarial weight {meta.get('adversarial')})")
    for name, (psnrs, errors) in results.items():
        print(f"  {name:<10} PSNR {sum(psnrs) / len(truth):6.2f} dB   mean error {sum(errors) / len(truth):5.2f} "
              "grey levels")


if __name__ == "__main__":
    main()
