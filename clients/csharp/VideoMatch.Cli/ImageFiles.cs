using Google.Protobuf;
using SkiaSharp;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Cli;

/// <summary>An image file as sent: the message, how its sent pixels map to the file's, and what was done to it.</summary>
/// <param name="Message">The image to send.</param>
/// <param name="Scale">The file's size and the sent size (equal unless it was downscaled).</param>
/// <param name="Bytes">The file's bytes, for pictures.</param>
/// <param name="Note">What was done, for the user (a conversion or a downscale), or null.</param>
internal sealed record ImageFile(Image Message, FrameScale Scale, byte[] Bytes, string? Note);

/// <summary>
/// Reads image files for the server: JPEG and PNG go as they are; any other format SkiaSharp decodes (WebP, BMP, GIF,
/// ICO, …) is converted to PNG here; a photo over the server's default pixel limit (12 MP phone photos) is downscaled
/// here, its aspect ratio kept, and its matches are mapped back to the file's own pixels.
/// </summary>
internal static class ImageFiles
{
    /// <summary>The server's default <c>Limits:MaxImagePixels</c> (4096×2160): larger images are downscaled to it.</summary>
    public const long MaxPixels = 4096L * 2160;

    /// <summary>JPEG quality of a downscaled JPEG photo (PNG for every other source).</summary>
    private const int JpegQuality = 95;

    public static async Task<ImageFile> LoadAsync(FileInfo file, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (Directory.Exists(file.FullName))
        {
            throw new IOException($"{file.Name} is a directory; give an image file (JPEG, PNG, WebP, BMP, …).");
        }

        if (!file.Exists)
        {
            throw new IOException($"{file.FullName} does not exist.");
        }

        var bytes = await File.ReadAllBytesAsync(file.FullName, cancellationToken).ConfigureAwait(false);
        return Prepare(bytes, file.Name);
    }

    /// <summary>The message for an image file's <paramref name="bytes"/> (see the type's summary).</summary>
    public static ImageFile Prepare(byte[] bytes, string name)
    {
        if (bytes.Length == 0)
        {
            throw new IOException($"{name} is empty (0 bytes).");
        }

        using var codec = SKCodec.Create(new SKMemoryStream(bytes))
            ?? throw new IOException($"{name} is not an image this tool can read (JPEG, PNG, WebP, BMP, GIF or ICO).");
        var (width, height) = (codec.Info.Width, codec.Info.Height);
        var format = codec.EncodedFormat;
        var fits = (long)width * height <= MaxPixels;
        if (fits && format is SKEncodedImageFormat.Jpeg or SKEncodedImageFormat.Png)
        {
            return new ImageFile(Images.Encoded(bytes, name), new FrameScale(width, height, width, height), bytes, null);
        }

        using var decoded = SKBitmap.Decode(codec) ?? throw new IOException($"{name} ({format}) could not be decoded.");
        var scale = fits ? 1 : Math.Sqrt((double)MaxPixels / ((long)width * height));
        var (sentWidth, sentHeight) = (Math.Max(1, (int)Math.Floor(width * scale)), Math.Max(1, (int)Math.Floor(height * scale)));
        using var sent = fits ? decoded.Copy() : decoded.Resize(new SKImageInfo(sentWidth, sentHeight, decoded.ColorType, decoded.AlphaType),
            new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear));
        var encoding = !fits && format == SKEncodedImageFormat.Jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png;
        using var data = sent.Encode(encoding, encoding == SKEncodedImageFormat.Jpeg ? JpegQuality : 100);
        var message = new Image
        {
            Encoded = new EncodedImage { Encoding = encoding == SKEncodedImageFormat.Jpeg ? ImageEncoding.Jpeg : ImageEncoding.Png, Data = ByteString.CopyFrom(data.ToArray()) },
        };
        var note = fits
            ? $"{name}: {format.ToString().ToUpperInvariant()} converted to PNG (the server reads JPEG and PNG)"
            : $"{name}: {width}×{height} ({width * (long)height / 1e6:F1} MP) is over the server's default limit of {MaxPixels / 1e6:F1} MP: sent at {sentWidth}×{sentHeight}; matches are in the file's own pixels";
        return new ImageFile(message, new FrameScale(width, height, sentWidth, sentHeight), bytes, note);
    }
}
