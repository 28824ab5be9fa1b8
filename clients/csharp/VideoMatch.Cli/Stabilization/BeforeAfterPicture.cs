using SkiaSharp;
using VideoMatch.Client;

namespace VideoMatch.Cli.Stabilization;

/// <summary>
/// The before/after picture: the average of all input frames beside the average of all stabilized frames (shake
/// blurs the first, a steady camera keeps the second sharp), above a plot of the camera's motion in x and y against
/// the frame number, measured (thin) and smoothed (thick).
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

    /// <summary>
    /// The camera's motion per frame, in pixels: the opposite of the image content's (the path's), so a camera that
    /// pans right plots rising x. Measured, or smoothed.
    /// </summary>
    internal static (double[] X, double[] Y) CameraMotion(CameraPath camera, bool smoothed)
    {
        var path = smoothed ? camera.Smoothed : camera.Path;
        return (path.Select(s => -s.Tx).ToArray(), path.Select(s => -s.Ty).ToArray());
    }

    private static void DrawPath(SKCanvas canvas, CameraPath camera, SKRect where, SKFont font, SKPaint text)
    {
        var count = camera.Path.Count;
        if (count < 2)
        {
            return;
        }

        var (x, y) = CameraMotion(camera, smoothed: false);
        var (smoothX, smoothY) = CameraMotion(camera, smoothed: true);
        var values = x.Concat(y).Concat(smoothX).Concat(smoothY).ToArray();
        var (low, high) = (values.Min(), values.Max());
        var span = Math.Max(high - low, 1e-6);
        canvas.DrawText("camera motion (the image moves the opposite way): x, right (blue); y, down (red); measured thin, smoothed thick",
            where.Left, where.Top + 14, SKTextAlign.Left, font, text);
        // Room for the pixel labels on the left and the frame axis below.
        const float axisLeft = 56;
        const float axisBelow = 34;
        var plot = new SKRect(where.Left + axisLeft, where.Top + 24, where.Right, where.Bottom - axisBelow);
        using var small = CliFont.Create(12);
        using var axis = new SKPaint { Color = SKColors.Gray, StrokeWidth = 1, IsStroke = true };
        canvas.DrawLine(plot.Left, plot.Top, plot.Left, plot.Bottom, axis);
        canvas.DrawLine(plot.Left, plot.Bottom, plot.Right, plot.Bottom, axis);
        canvas.DrawText($"{high:F0} px", plot.Left - 4, plot.Top + 10, SKTextAlign.Right, small, text);
        canvas.DrawText($"{low:F0} px", plot.Left - 4, plot.Bottom, SKTextAlign.Right, small, text);
        for (var k = 0; k <= 4; k++)
        {
            var frame = (int)Math.Round((count - 1) * k / 4.0);
            var at = plot.Left + (plot.Width * frame / (count - 1));
            canvas.DrawLine(at, plot.Bottom, at, plot.Bottom + 4, axis);
            canvas.DrawText($"{frame}", at, plot.Bottom + 16, k == 4 ? SKTextAlign.Right : SKTextAlign.Center, small, text);
        }

        canvas.DrawText("frame", plot.MidX, plot.Bottom + 31, SKTextAlign.Center, small, text);
        Line(canvas, plot, count, t => x[t], low, span, SKColors.SteelBlue, 1);
        Line(canvas, plot, count, t => smoothX[t], low, span, SKColors.Navy, 3);
        Line(canvas, plot, count, t => y[t], low, span, SKColors.IndianRed, 1);
        Line(canvas, plot, count, t => smoothY[t], low, span, SKColors.DarkRed, 3);
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
