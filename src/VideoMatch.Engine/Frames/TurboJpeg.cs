using System.Runtime.InteropServices;

namespace VideoMatch.Engine.Frames;

/// <summary>
/// libjpeg-turbo's TurboJPEG API (Debian's libturbojpeg0). It decodes JPEG frames because it reports libjpeg's
/// warnings — a scan cut short, data after a cut, corrupt entropy-coded data — apart from its errors; SkiaSharp
/// decodes such files "successfully" with grey or garbled blocks, and a frame like that must not become a stream's
/// reference.
/// </summary>
internal static partial class TurboJpeg
{
    private const string Library = "libturbojpeg.so.0";

    // turbojpeg.h
    private const int PixelFormatRgb = 0;
    private const int PixelFormatGray = 6;
    private const int PixelFormatCmyk = 11;
    private const int ColorspaceGray = 2;
    private const int ColorspaceCmyk = 3;
    private const int ColorspaceYcck = 4;
    private const int FlagStopOnWarning = 8192;
    private const int FlagLimitScans = 32768;
    private const int ErrorWarning = 0;

    /// <summary>A JPEG's size and the layout it decodes to.</summary>
    public readonly record struct Header(int Width, int Height, FramePixelFormat Format, bool Cmyk)
    {
        /// <summary>Bytes of the buffer the decode writes (CMYK decodes at 4 bytes a pixel, then becomes RGB in place).</summary>
        public long DecodeBytes => (long)Width * Height * (Cmyk ? 4 : PixelFormats.BytesPerPixel(Format));
    }

    private static readonly Lazy<string?> Missing = new(Probe);

    /// <summary>Why JPEG frames cannot be decoded on this machine (the library is not installed), or null when they can.</summary>
    public static string? Unavailable => Missing.Value;

    private static string? Probe()
    {
        try
        {
            var handle = tjInitDecompress();
            if (handle != IntPtr.Zero)
            {
                _ = tjDestroy(handle);
            }

            return null;
        }
        catch (DllNotFoundException)
        {
            return $"this server cannot decode JPEG frames: libjpeg-turbo's TurboJPEG library ({Library}) is not installed on it (Debian and Ubuntu: apt-get install libturbojpeg0); send raw or PNG frames";
        }
    }

    /// <summary>The header's facts, or the reason the header cannot be read.</summary>
    public static unsafe (Header? Header, string? Problem) ReadHeader(ReadOnlySpan<byte> data)
    {
        var handle = Open();
        try
        {
            int width, height, subsampling, colorspace;
            fixed (byte* jpeg = data)
            {
                if (tjDecompressHeader3(handle, jpeg, (nuint)data.Length, &width, &height, &subsampling, &colorspace) != 0)
                {
                    return (null, ErrorText(handle));
                }
            }

            var cmyk = colorspace is ColorspaceCmyk or ColorspaceYcck;
            var format = colorspace == ColorspaceGray ? FramePixelFormat.Gray8 : FramePixelFormat.Rgb24;
            return (new Header(width, height, format, cmyk), null);
        }
        finally
        {
            _ = tjDestroy(handle);
        }
    }

    /// <summary>
    /// Decodes into <paramref name="target"/> (<see cref="Header.DecodeBytes"/> long); returns null on success, or
    /// libjpeg's message when the data is damaged: any warning stops the decode, as an error does.
    /// </summary>
    public static unsafe string? Decode(ReadOnlySpan<byte> data, in Header header, Span<byte> target)
    {
        var handle = Open();
        try
        {
            int result;
            fixed (byte* jpeg = data)
            fixed (byte* pixels = target)
            {
                result = tjDecompress2(handle, jpeg, (nuint)data.Length, pixels, header.Width, 0, header.Height,
                    header.Cmyk ? PixelFormatCmyk : header.Format == FramePixelFormat.Gray8 ? PixelFormatGray : PixelFormatRgb,
                    FlagStopOnWarning | FlagLimitScans);
            }

            if (result != 0)
            {
                var kind = tjGetErrorCode(handle) == ErrorWarning ? "libjpeg warning" : "libjpeg error";
                return $"{kind}: {ErrorText(handle)}";
            }
        }
        finally
        {
            _ = tjDestroy(handle);
        }

        if (header.Cmyk)
        {
            CmykToRgb(target, header.Width * header.Height);
        }

        return null;
    }

    /// <summary>
    /// Adobe's CMYK JPEGs (the ones in use) store inverted inks, so each channel times black is the RGB value; done in
    /// place, front to back (3 bytes written for every 4 read).
    /// </summary>
    private static void CmykToRgb(Span<byte> pixels, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var k = pixels[(4 * i) + 3];
            var c = pixels[4 * i];
            var m = pixels[(4 * i) + 1];
            var y = pixels[(4 * i) + 2];
            pixels[3 * i] = (byte)((c * k + 127) / 255);
            pixels[(3 * i) + 1] = (byte)((m * k + 127) / 255);
            pixels[(3 * i) + 2] = (byte)((y * k + 127) / 255);
        }
    }

    private static IntPtr Open()
    {
        var handle = tjInitDecompress();
        return handle != IntPtr.Zero ? handle : throw new InvalidOperationException("TurboJPEG could not create a decompressor (out of memory).");
    }

    private static string ErrorText(IntPtr handle) =>
        (Marshal.PtrToStringUTF8(tjGetErrorStr2(handle)) ?? "unknown error").TrimEnd('.', ' ', '\n');

    [LibraryImport(Library)]
    private static partial IntPtr tjInitDecompress();

    [LibraryImport(Library)]
    private static partial int tjDestroy(IntPtr handle);

    [LibraryImport(Library)]
    private static unsafe partial int tjDecompressHeader3(IntPtr handle, byte* jpegBuf, nuint jpegSize, int* width, int* height, int* jpegSubsamp, int* jpegColorspace);

    [LibraryImport(Library)]
    private static unsafe partial int tjDecompress2(IntPtr handle, byte* jpegBuf, nuint jpegSize, byte* dstBuf, int width, int pitch, int height, int pixelFormat, int flags);

    [LibraryImport(Library)]
    private static partial IntPtr tjGetErrorStr2(IntPtr handle);

    [LibraryImport(Library)]
    private static partial int tjGetErrorCode(IntPtr handle);
}
