using SkiaSharp;
using VideoMatch.Client;

namespace VideoMatch.Cli.Stabilization;

/// <summary>
/// The before/after picture: the average of all input frames beside the average of all stabilized frames (shake
/// blurs the first, a steady camera keeps the second sharp), above a plot of the camera path's x and y, measured
/// (thin) and smoothed (thick).
/// </summary>
internal static class BeforeAfterPicture
{
    public static void Save(string path, float[] before, float[] after, int width, int height, CameraPath camera)
    {
        var scale = Math.Min(1f, 640f / width);
        var (w, h) = ((int)(width * scale), (int)(height * scale));
        const int plotHeight = 220;
        using var surface = SKSurface.Create(new SKImageInfo((2 * w) + 30, h + plotHeight + 40));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var font = CliFont.Create(16);
        using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        DrawMean(canvas, before, width, height, new SKRect(10, 30, 10 + w, 30 + h));
        DrawMean(canvas, after, width, height, new SKRect(20 + w, 30, 20 + (2 * w), 30 + h));
        canvas.DrawText("before: mean of input frames", 10, 20, SKTextAlign.Left, font, text);
        canvas.DrawText("after: mean of stabilized frames", 20 + w, 20, SKTextAlign.Left, font, text);
        DrawPath(canvas, camera, new SKRect(10, h + 40, 20 + (2 * w), h + 30 + plotHeight), font, text);
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    private static void DrawMean(SKCanvas canvas, float[] mean, int width, int height, SKRect where)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var pixels = bitmap.GetPixelSpan();
        for (int p = 0, q = 0; p < mean.Length; p += 3, q += 4)
        {
            (pixels[q], pixels[q + 1], pixels[q + 2], pixels[q + 3]) = (Byte(mean[p]), Byte(mean[p + 1]), Byte(mean[p + 2]), 255);
        }

        using var image = SKImage.FromBitmap(bitmap);
        canvas.DrawImage(image, where, new SKSamplingOptions(SKFilterMode.Linear));
    }

    private static void DrawPath(SKCanvas canvas, CameraPath camera, SKRect where, SKFont font, SKPaint text)
    {
        var count = camera.Path.Count;
        if (count < 2)
        {
            return;
        }

        var values = camera.Path.Concat(camera.Smoothed).SelectMany(s => new[] { s.Tx, s.Ty }).ToArray();
        var (low, high) = (values.Min(), values.Max());
        var span = Math.Max(high - low, 1e-6);
        canvas.DrawText($"camera path: x (blue), y (red); measured thin, smoothed thick; {low:F0} to {high:F0} px", where.Left, where.Top + 14, SKTextAlign.Left, font, text);
        var plot = new SKRect(where.Left, where.Top + 24, where.Right, where.Bottom);
        Line(canvas, plot, count, t => camera.Path[t].Tx, low, span, SKColors.SteelBlue, 1);
        Line(canvas, plot, count, t => camera.Smoothed[t].Tx, low, span, SKColors.Navy, 3);
        Line(canvas, plot, count, t => camera.Path[t].Ty, low, span, SKColors.IndianRed, 1);
        Line(canvas, plot, count, t => camera.Smoothed[t].Ty, low, span, SKColors.DarkRed, 3);
    }

    private static void Line(SKCanvas canvas, SKRect plot, int count, Func<int, double> value, double low, double span, SKColor colour, float stroke)
    {
        using var paint = new SKPaint { Color = colour, StrokeWidth = stroke, IsStroke = true, IsAntialias = true };
        var points = new SKPoint[count];
        for (var t = 0; t < count; t++)
        {
            points[t] = new SKPoint(plot.Left + (plot.Width * t / (count - 1)), plot.Bottom - (float)((value(t) - low) / span * plot.Height));
        }

        canvas.DrawPoints(SKPointMode.Polygon, points, paint);
    }

    private static byte Byte(float value) => (byte)Math.Clamp(MathF.Round(value), 0, 255);
}
