using System.Globalization;
using SkiaSharp;
using VideoMatch.Client;

namespace VideoMatch.Cli;

/// <summary>An image to draw and the size of the pixel space its matches are given in (the bitmap is scaled to it).</summary>
internal sealed record PictureImage(SKBitmap Bitmap, int Width, int Height)
{
    public static PictureImage Of(SKBitmap bitmap) => new(bitmap, bitmap.Width, bitmap.Height);
}

/// <summary>What a picture shows, for the command's summary line.</summary>
internal sealed record PictureSummary(int Width, int Height, int Matches, int Lines);

/// <summary>
/// Side-by-side picture of a pair: both images at one height in their own aspect ratio, every match as a dot
/// coloured by score, lines for a readable subset (the best match per cell of a grid over image 0, at most
/// <see cref="MaxLines"/>), and a header that says what is drawn, with a colour legend. At most
/// <see cref="MaxWidth"/> × <see cref="MaxImageHeight"/> pixels of images, whatever the inputs' sizes.
/// </summary>
internal static class MatchPicture
{
    public const int MaxWidth = 2400;
    public const int MaxImageHeight = 1000;
    public const int MaxLines = 250;
    private const int Gap = 8;
    private const int Header = 58;

    /// <param name="caption">What the two images are (files, or a video's frames), first on the header line.</param>
    public static PictureSummary Save(PictureImage image0, PictureImage image1, IReadOnlyList<KeypointMatch> matches, string path, string caption)
    {
        // One display height for both, then one scale so the whole fits the caps.
        var height = (double)Math.Min(MaxImageHeight, Math.Max(image0.Height, image1.Height));
        var (w0, w1) = (image0.Width * height / image0.Height, image1.Width * height / image1.Height);
        var fit = Math.Min(1.0, (MaxWidth - Gap) / (w0 + w1));
        height *= fit;
        var (s0, s1) = ((float)(height / image0.Height), (float)(height / image1.Height));
        var (width0, width1, imageHeight) = ((int)Math.Round(image0.Width * s0), (int)Math.Round(image1.Width * s1), (int)Math.Round(height));
        var left1 = width0 + Gap;
        var width = Math.Max(left1 + width1, 520);

        using var surface = SKSurface.Create(new SKImageInfo(width, Header + imageHeight, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(new SKColor(24, 24, 24));
        var sampling = new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear);
        using (var picture0 = SKImage.FromBitmap(image0.Bitmap))
        using (var picture1 = SKImage.FromBitmap(image1.Bitmap))
        {
            canvas.DrawImage(picture0, new SKRect(0, Header, width0, Header + imageHeight), sampling);
            canvas.DrawImage(picture1, new SKRect(left1, Header, left1 + width1, Header + imageHeight), sampling);
        }

        SKPoint P0(KeypointMatch m) => new((m.X0 + 0.5f) * s0, Header + ((m.Y0 + 0.5f) * s0));
        SKPoint P1(KeypointMatch m) => new(left1 + ((m.X1 + 0.5f) * s1), Header + ((m.Y1 + 0.5f) * s1));

        var lines = Subset(matches, image0.Width, image0.Height);
        using var dot = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Fill };
        using var line = new SKPaint { IsAntialias = true, StrokeWidth = 1.5f, Style = SKPaintStyle.Stroke };
        using var outline = new SKPaint { IsAntialias = true, StrokeWidth = 1f, Style = SKPaintStyle.Stroke, Color = SKColors.Black };
        // Every match as a dot, lowest scores first so the best lie on top.
        for (var i = matches.Count - 1; i >= 0; i--)
        {
            dot.Color = Colour(matches[i].Score);
            canvas.DrawCircle(P0(matches[i]), 1.6f, dot);
            canvas.DrawCircle(P1(matches[i]), 1.6f, dot);
        }

        for (var k = lines.Count - 1; k >= 0; k--)
        {
            var m = matches[lines[k]];
            line.Color = Colour(m.Score).WithAlpha(220);
            canvas.DrawLine(P0(m), P1(m), line);
            foreach (var end in new[] { P0(m), P1(m) })
            {
                dot.Color = Colour(m.Score);
                canvas.DrawCircle(end, 3f, dot);
                canvas.DrawCircle(end, 3f, outline);
            }
        }

        DrawHeader(canvas, width, caption, matches.Count, lines.Count);
        using var snapshot = surface.Snapshot();
        using var png = snapshot.Encode(SKEncodedImageFormat.Png, 100);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        using (var file = File.Create(path))
        {
            png.SaveTo(file);
        }

        return new PictureSummary(width, Header + imageHeight, matches.Count, lines.Count);
    }

    /// <summary>A gray frame as a bitmap (for pictures of streamed frames).</summary>
    public static SKBitmap FromGray(ReadOnlySpan<byte> gray, int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque));
        gray.CopyTo(bitmap.GetPixelSpan());
        return bitmap;
    }

    /// <summary>
    /// Indices of the matches that get a line: the best-scoring match in each cell of a grid over image 0 (matches
    /// come best first), thinned evenly to <see cref="MaxLines"/>. All of them when there are few.
    /// </summary>
    internal static List<int> Subset(IReadOnlyList<KeypointMatch> matches, int width, int height)
    {
        var all = Enumerable.Range(0, matches.Count).ToList();
        if (matches.Count <= MaxLines)
        {
            return all;
        }

        // About 1.5 × MaxLines cells in the image's aspect ratio, so most cells that hold matches keep one.
        var columns = Math.Max(1, (int)Math.Round(Math.Sqrt(1.5 * MaxLines * width / height)));
        var rows = Math.Max(1, (int)Math.Round(1.5 * MaxLines / columns));
        var taken = new HashSet<int>();
        var chosen = new List<int>();
        foreach (var i in all)
        {
            var cell = (Math.Clamp((int)(matches[i].Y0 / height * rows), 0, rows - 1) * columns) + Math.Clamp((int)(matches[i].X0 / width * columns), 0, columns - 1);
            if (taken.Add(cell))
            {
                chosen.Add(i);
            }
        }

        if (chosen.Count <= MaxLines)
        {
            return chosen;
        }

        var step = (double)chosen.Count / MaxLines;
        return [.. Enumerable.Range(0, MaxLines).Select(k => chosen[(int)(k * step)])];
    }

    /// <summary>Red (score 0) through yellow to green (score 1).</summary>
    internal static SKColor Colour(float score)
    {
        var s = Math.Clamp(score, 0f, 1f);
        return s < 0.5f
            ? new SKColor(230, (byte)(40 + (380 * s)), 40)
            : new SKColor((byte)(230 - (380 * (s - 0.5f))), 230, 40);
    }

    private static void DrawHeader(SKCanvas canvas, int width, string caption, int matches, int lines)
    {
        using var font = CliFont.Create(17);
        using var small = CliFont.Create(14);
        using var text = new SKPaint { Color = SKColors.White, IsAntialias = true };
        var title = matches == 0 ? "no matches"
            : lines == matches ? string.Create(CultureInfo.InvariantCulture, $"{matches} matches, all drawn as lines")
            : string.Create(CultureInfo.InvariantCulture, $"{matches} matches as dots; lines for {lines} of them (the best per area of image 0)");
        canvas.DrawText($"{caption}: {title}", 10, 22, SKTextAlign.Left, font, text);

        // Legend: the colour scale of the scores.
        const float barLeft = 62;
        const float barWidth = 200;
        canvas.DrawText("score 0", 10, 48, SKTextAlign.Left, small, text);
        using var bar = new SKPaint();
        for (var x = 0; x < barWidth; x++)
        {
            bar.Color = Colour(x / (barWidth - 1));
            canvas.DrawRect(barLeft + x, 36, 1, 14, bar);
        }

        canvas.DrawText("1", barLeft + barWidth + 6, 48, SKTextAlign.Left, small, text);
    }
}
