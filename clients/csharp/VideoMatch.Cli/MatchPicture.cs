using SkiaSharp;
using VideoMatch.Client;

namespace VideoMatch.Cli;

/// <summary>
/// Side-by-side picture of a pair with one line per match, coloured from red (score 0) to green (score 1),
/// and a dot at each end, as the Hugging Face processor's visualize_keypoint_matching draws it.
/// </summary>
internal static class MatchPicture
{
    public static void Save(SKBitmap image0, SKBitmap image1, IReadOnlyList<KeypointMatch> matches, string path)
    {
        var width = image0.Width + image1.Width;
        var height = Math.Max(image0.Height, image1.Height);
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.Black);
        using var picture0 = SKImage.FromBitmap(image0);
        using var picture1 = SKImage.FromBitmap(image1);
        canvas.DrawImage(picture0, 0, 0, SKSamplingOptions.Default);
        canvas.DrawImage(picture1, image0.Width, 0, SKSamplingOptions.Default);
        using var line = new SKPaint { IsAntialias = true, StrokeWidth = 1.5f, Style = SKPaintStyle.Stroke };
        using var dot = new SKPaint { IsAntialias = true, Color = SKColors.Black, Style = SKPaintStyle.Fill };
        // Lowest scores first, so the best matches are drawn on top.
        for (var i = matches.Count - 1; i >= 0; i--)
        {
            var m = matches[i];
            var score = Math.Clamp(m.Score, 0f, 1f);
            line.Color = new SKColor((byte)(255 * (1 - score)), (byte)(255 * score), 0);
            canvas.DrawLine(m.X0, m.Y0, m.X1 + image0.Width, m.Y1, line);
            canvas.DrawCircle(m.X0, m.Y0, 2f, dot);
            canvas.DrawCircle(m.X1 + image0.Width, m.Y1, 2f, dot);
        }

        using var snapshot = surface.Snapshot();
        using var png = snapshot.Encode(SKEncodedImageFormat.Png, 100);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        using var file = File.Create(path);
        png.SaveTo(file);
    }

    /// <summary>A gray frame as a bitmap (for pictures of streamed frames).</summary>
    public static SKBitmap FromGray(ReadOnlySpan<byte> gray, int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque));
        gray.CopyTo(bitmap.GetPixelSpan());
        return bitmap;
    }
}
