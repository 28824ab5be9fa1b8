using System.Numerics;
using Google.Protobuf;
using VideoMatch.Contracts.V1;
using VideoMatch.Synthetic;

namespace VideoMatch.Tests;

/// <summary>Frames of a textured scene seen through known camera offsets.</summary>
public sealed class SyntheticVideo(int seed, int width = 400, int height = 300)
{
    private readonly TexturedScene _scene = new(seed);

    public int Width => width;

    public int Height => height;

    /// <summary>Frame showing the texture shifted by <paramref name="offset"/> (camera moved by +offset).</summary>
    public Frame Frame(ulong sequence, Vector2 offset) => new()
    {
        Sequence = sequence,
        TimestampUs = (long)sequence * 33_333,
        Image = Raw(offset),
    };

    public Image Raw(Vector2 offset)
    {
        var rgb = new byte[width * height * 3];
        _scene.RenderRgb(width, height, View(offset), rgb);
        return new Image { Raw = new RawImage { Format = PixelFormat.Rgb24, Width = (uint)width, Height = (uint)height, Data = ByteString.CopyFrom(rgb) } };
    }

    /// <summary>Camera offsets with sub-pixel steps of up to ±6 px.</summary>
    public static Vector2[] Offsets(int seed, int count)
    {
        var random = new Random(seed);
        var offsets = new Vector2[count];
        for (var i = 1; i < count; i++)
        {
            offsets[i] = offsets[i - 1] + new Vector2((random.NextSingle() * 12f) - 6f, (random.NextSingle() * 12f) - 6f);
        }

        return offsets;
    }

    public static Matrix3x2 View(Vector2 offset) => Matrix3x2.CreateTranslation(60 + offset.X, 40 + offset.Y);

    /// <summary>Image content moves opposite to the camera: a point at p in frame a is at p + (offset_a − offset_b) in frame b.</summary>
    public static Vector2 Motion(Vector2 offsetA, Vector2 offsetB) => offsetA - offsetB;
}
