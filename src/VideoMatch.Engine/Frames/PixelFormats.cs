namespace VideoMatch.Engine.Frames;

/// <summary>Pixel layouts a raw frame may arrive in.</summary>
public enum FramePixelFormat
{
    Gray8,
    Rgb24,
    Bgr24,
    Rgba32,
}

/// <summary>Facts about pixel layouts.</summary>
public static class PixelFormats
{
    public static int BytesPerPixel(FramePixelFormat format) => format switch
    {
        FramePixelFormat.Gray8 => 1,
        FramePixelFormat.Rgb24 or FramePixelFormat.Bgr24 => 3,
        FramePixelFormat.Rgba32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown pixel format."),
    };

    /// <summary>Byte offsets of red, green and blue inside one pixel.</summary>
    internal static (int R, int G, int B) ChannelOffsets(FramePixelFormat format) => format switch
    {
        FramePixelFormat.Gray8 => (0, 0, 0),
        FramePixelFormat.Rgb24 or FramePixelFormat.Rgba32 => (0, 1, 2),
        FramePixelFormat.Bgr24 => (2, 1, 0),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown pixel format."),
    };

    /// <summary>Checks a raw frame's size, stride and byte count against each other and the limit.</summary>
    /// <exception cref="FrameRejectedException">The frame is inconsistent; the message says how.</exception>
    public static void Validate(in FrameInput frame, int maxDimension)
    {
        var format = frame.Format ?? throw new ArgumentException("Not a raw frame.", nameof(frame));
        if (frame.Width <= 0 || frame.Height <= 0)
        {
            throw new FrameRejectedException($"Image size {frame.Width}×{frame.Height} is empty; width and height must be at least 1.");
        }

        if (frame.Width > maxDimension || frame.Height > maxDimension)
        {
            throw new FrameRejectedException($"Image size {frame.Width}×{frame.Height} exceeds the server's limit of {maxDimension} pixels per side; downscale the frame first.");
        }

        var rowBytes = (long)frame.Width * BytesPerPixel(format);
        if (frame.RowStride < rowBytes)
        {
            throw new FrameRejectedException($"Row stride {frame.RowStride} is smaller than one row of {frame.Width} {Name(format)} pixels ({rowBytes} bytes); send 0 for tightly packed rows.");
        }

        var needed = (long)frame.RowStride * (frame.Height - 1) + rowBytes;
        if (frame.Data.Length < needed)
        {
            throw new FrameRejectedException($"Pixel data holds {frame.Data.Length} bytes but a {frame.Width}×{frame.Height} {Name(format)} image with row stride {frame.RowStride} needs {needed}; the frame looks truncated or its size is wrong.");
        }

        if (frame.Data.Length > needed + frame.RowStride - rowBytes)
        {
            throw new FrameRejectedException($"Pixel data holds {frame.Data.Length} bytes but a {frame.Width}×{frame.Height} {Name(format)} image with row stride {frame.RowStride} needs only {needed}; width, height, stride or format does not match the data.");
        }
    }

    public static string Name(FramePixelFormat format) => format switch
    {
        FramePixelFormat.Gray8 => "GRAY8",
        FramePixelFormat.Rgb24 => "RGB24",
        FramePixelFormat.Bgr24 => "BGR24",
        FramePixelFormat.Rgba32 => "RGBA32",
        _ => format.ToString(),
    };
}
