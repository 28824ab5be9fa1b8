using SkiaSharp;

namespace VideoMatch.Tests;

/// <summary>Frames cut from real photos (../shared/images), as a camera window over the scene would see them.</summary>
internal static class Photos
{
    /// <summary>The window's RGB24 pixels, rows packed.</summary>
    public static byte[] CropRgb(SKBitmap photo, int left, int top, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(photo);
        var rgb = new byte[width * height * 3];
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var colour = photo.GetPixel(left + x, top + y);
                var at = 3 * ((y * width) + x);
                (rgb[at], rgb[at + 1], rgb[at + 2]) = (colour.Red, colour.Green, colour.Blue);
            }
        }

        return rgb;
    }
}
