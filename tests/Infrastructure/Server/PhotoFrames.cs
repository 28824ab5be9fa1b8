using Google.Protobuf;
using SkiaSharp;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Tests;

/// <summary>Windows of real photos as the contract's raw RGB24 images.</summary>
internal static class PhotoFrames
{
    public static Image Crop(SKBitmap photo, int left, int top, int width, int height) =>
        new() { Raw = new RawImage { Format = PixelFormat.Rgb24, Width = (uint)width, Height = (uint)height, Data = ByteString.CopyFrom(Photos.CropRgb(photo, left, top, width, height)) } };
}
