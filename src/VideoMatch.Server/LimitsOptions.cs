using VideoMatch.Engine;
using Microsoft.Extensions.Options;

namespace VideoMatch.Server;

/// <summary>Input limits. Bound from the <c>Limits</c> section.</summary>
public sealed class LimitsOptions
{
    public const string Section = "Limits";

    /// <summary>Largest accepted width or height, raw or decoded, in pixels. Default 8192.</summary>
    public int MaxImageDimension { get; set; } = 8192;

    /// <summary>
    /// Largest accepted width × height, raw or decoded (an encoded image is refused from its header, before any
    /// pixel is decoded). Default 8847360 (4096×2160, DCI 4K).
    /// </summary>
    public long MaxImagePixels { get; set; } = 4096L * 2160;

    /// <summary>
    /// Megabytes that image decodes may hold at once, across all calls; past it decodes wait (the stream's reader
    /// stops, so HTTP/2 flow control slows its sender). Each stream decodes one frame at a time. Default 256
    /// (seven decodes at the pixel limit).
    /// </summary>
    public int MaxDecodeMegabytes { get; set; } = 256;

    /// <summary>Largest gRPC message in bytes, both ways. Default 16 MiB (a 1920×1080 RGBA frame is 8.3 MB).</summary>
    public int MaxMessageBytes { get; set; } = 16 * 1024 * 1024;
}

internal sealed class LimitsOptionsValidator : IValidateOptions<LimitsOptions>
{
    public ValidateOptionsResult Validate(string? name, LimitsOptions options)
    {
        var problems = new List<string>();
        SettingRange.Check(problems, "Limits:MaxImageDimension", options.MaxImageDimension, 32, 65535, "pixels per side");
        SettingRange.Check(problems, "Limits:MaxImagePixels", options.MaxImagePixels, 1024, 65535L * 65535, "pixels per image");
        SettingRange.Check(problems, "Limits:MaxDecodeMegabytes", options.MaxDecodeMegabytes, 1, 1024 * 1024, "MiB");
        SettingRange.Check(problems, "Limits:MaxMessageBytes", options.MaxMessageBytes, 64 * 1024, 1024 * 1024 * 1024, "bytes");

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
