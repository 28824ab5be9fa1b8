using SkiaSharp;
using VideoMatch.Cli.Stabilization;
using VideoMatch.Client;

namespace VideoMatch.Cli.Tests;

/// <summary>What people look at: capped, aspect-true match pictures with a readable subset, a legend, and labels that render.</summary>
public sealed class PictureTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("videomatch-pictures-");

    public void Dispose() => _folder.Delete(recursive: true);

    [Fact]
    public void Save_HugePhotosWithThousandsOfMatches_CapsSizeKeepsAspectAndDrawsASubset()
    {
        using var photo0 = Flat(5938, 3959, SKColors.SteelBlue);
        using var photo1 = Flat(3000, 4000, SKColors.DarkOliveGreen);
        var random = new Random(5);
        var matches = Enumerable.Range(0, 2500)
            .Select(i => new KeypointMatch(random.NextSingle() * 5938, random.NextSingle() * 3959, random.NextSingle() * 3000, random.NextSingle() * 4000, 1f - (i / 2500f)))
            .ToArray();
        var path = Path.Combine(_folder.FullName, "huge.png");

        var summary = MatchPicture.Save(PictureImage.Of(photo0), PictureImage.Of(photo1), matches, path, "a.jpg (left) and b.jpg (right)");

        using var picture = SKBitmap.Decode(path);
        Assert.True(picture.Width <= MatchPicture.MaxWidth, $"{picture.Width} px wide");
        Assert.Equal((summary.Width, summary.Height), (picture.Width, picture.Height));
        Assert.InRange(summary.Lines, 100, MatchPicture.MaxLines);
        Assert.Equal(2500, summary.Matches);
        Assert.True(TextPixels(picture, new SKRectI(0, 0, picture.Width, 30)) > 300, "the header names what is drawn");
    }

    [Fact]
    public void Save_ImagesOfDifferentShapes_BothAtOneHeightInTheirOwnAspectRatio()
    {
        using var photo0 = Flat(5938, 3959, SKColors.SteelBlue);
        using var photo1 = Flat(640, 480, SKColors.DarkOliveGreen);
        var path = Path.Combine(_folder.FullName, "shapes.png");

        MatchPicture.Save(PictureImage.Of(photo0), PictureImage.Of(photo1), [], path, "a.jpg (left) and b.jpg (right)");

        using var picture = SKBitmap.Decode(path);
        var imageHeight = picture.Height - 58;
        var width0 = ColumnOf(picture, SKColors.SteelBlue, imageHeight, 0);
        var width1 = ColumnOf(picture, SKColors.DarkOliveGreen, imageHeight, width0 + 8) - (width0 + 8);
        Assert.InRange(width0, (imageHeight * 5938 / 3959) - 2, (imageHeight * 5938 / 3959) + 2);
        Assert.InRange(width1, (imageHeight * 640 / 480) - 2, (imageHeight * 640 / 480) + 2);
    }

    [Fact]
    public void Subset_FewMatches_DrawsThemAll()
    {
        var matches = Enumerable.Range(0, 40).Select(i => new KeypointMatch(i, i, i, i, 0.5f)).ToArray();

        Assert.Equal(40, MatchPicture.Subset(matches, 100, 100).Count);
    }

    [Fact]
    public void Subset_ClusteredMatches_SpreadOverTheImage()
    {
        // 2000 matches in one corner, 50 spread elsewhere: the lines must not all go to the corner.
        var random = new Random(3);
        var corner = Enumerable.Range(0, 2000).Select(_ => new KeypointMatch(random.NextSingle() * 50, random.NextSingle() * 50, 0, 0, 0.9f));
        var spread = Enumerable.Range(0, 50).Select(_ => new KeypointMatch(100 + (random.NextSingle() * 900), 100 + (random.NextSingle() * 900), 0, 0, 0.5f));
        var matches = corner.Concat(spread).ToArray();

        var lines = MatchPicture.Subset(matches, 1000, 1000);

        Assert.True(lines.Count(i => matches[i].X0 >= 100) >= 40, "most of the spread matches keep their line");
        Assert.True(lines.Count <= MatchPicture.MaxLines);
    }

    [Fact]
    public void Colour_LowToHighScore_RedToGreen()
    {
        Assert.True(MatchPicture.Colour(0f).Red > 200 && MatchPicture.Colour(0f).Green < 60);
        Assert.True(MatchPicture.Colour(1f).Green > 200 && MatchPicture.Colour(1f).Red < 60);
    }

    [Fact]
    public void BeforeAfter_Labels_RenderTextPixels()
    {
        var path = Path.Combine(_folder.FullName, "steady.png");
        var mean = Enumerable.Repeat(128f, 64 * 48 * 3).ToArray();
        var camera = CameraPath.Smooth([null, [1, 0, 1, 0, 1, 0, 0, 0, 1], [1, 0, 1, 0, 1, 0, 0, 0, 1]], radius: 1);

        BeforeAfterPicture.Save(path, mean, mean, 64, 48, camera);

        using var picture = SKBitmap.Decode(path);
        // The labels above the two frames: dark text on the white background.
        Assert.True(TextPixels(picture, new SKRectI(0, 0, picture.Width, 26), dark: true) > 100, "labels are drawn");
    }

    private static SKBitmap Flat(int width, int height, SKColor colour)
    {
        var bitmap = new SKBitmap(width, height);
        bitmap.Erase(colour);
        return bitmap;
    }

    /// <summary>The first column from <paramref name="x"/>, scanning right along the middle row, where the picture stops showing <paramref name="colour"/>.</summary>
    private static int ColumnOf(SKBitmap picture, SKColor colour, int imageHeight, int x)
    {
        var y = 58 + (imageHeight / 2);
        while (x < picture.Width && Near(picture.GetPixel(x, y), colour))
        {
            x++;
        }

        return x;
    }

    private static int TextPixels(SKBitmap picture, SKRectI area, bool dark = false)
    {
        var count = 0;
        for (var y = area.Top; y < area.Bottom; y++)
        {
            for (var x = area.Left; x < Math.Min(area.Right, picture.Width); x++)
            {
                var p = picture.GetPixel(x, y);
                count += dark ? (p.Red < 100 && p.Green < 100 && p.Blue < 100 ? 1 : 0) : (p.Red > 200 && p.Green > 200 && p.Blue > 200 ? 1 : 0);
            }
        }

        return count;
    }

    private static bool Near(SKColor a, SKColor b) =>
        Math.Abs(a.Red - b.Red) < 40 && Math.Abs(a.Green - b.Green) < 40 && Math.Abs(a.Blue - b.Blue) < 40;
}
