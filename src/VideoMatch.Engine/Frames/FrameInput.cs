namespace VideoMatch.Engine.Frames;

/// <summary>Compressed image formats a frame may arrive in.</summary>
public enum FrameEncoding
{
    Jpeg,
    Png,
}

/// <summary>One image as a client sent it: raw pixels or an encoded file. The bytes are borrowed, not copied.</summary>
public readonly record struct FrameInput
{
    private FrameInput(ReadOnlyMemory<byte> data, FramePixelFormat? format, FrameEncoding? encoding, int width, int height, int rowStride)
    {
        Data = data;
        Format = format;
        Encoding = encoding;
        Width = width;
        Height = height;
        RowStride = rowStride;
    }

    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>Set for raw frames.</summary>
    public FramePixelFormat? Format { get; }

    /// <summary>Set for encoded frames.</summary>
    public FrameEncoding? Encoding { get; }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Bytes from one row to the next (raw frames).</summary>
    public int RowStride { get; }

    /// <summary>Raw pixels; <paramref name="rowStride"/> 0 means tightly packed.</summary>
    public static FrameInput Raw(FramePixelFormat format, int width, int height, int rowStride, ReadOnlyMemory<byte> data) =>
        new(data, format, null, width, height, rowStride == 0 ? width * PixelFormats.BytesPerPixel(format) : rowStride);

    public static FrameInput Encoded(FrameEncoding encoding, ReadOnlyMemory<byte> data) => new(data, null, encoding, 0, 0, 0);
}
