using System.Numerics;
using Google.Protobuf;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using VideoMatch.Contracts.V1;
using VideoMatch.Synthetic;

namespace VideoMatch.Server.Tests;

/// <summary>The real server, in memory, on the embedded model at a small input size so tests stay fast.</summary>
public sealed class ServerFactory : WebApplicationFactory<Program>
{
    public const int ModelWidth = 320;
    public const int ModelHeight = 256;

    private readonly Dictionary<string, string?> _settings = new()
    {
        ["Inference:EmbeddedWidth"] = ModelWidth.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Inference:EmbeddedHeight"] = ModelHeight.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Inference:WarmUp"] = "false",
        ["Metrics:Url"] = "",
        ["Batching:MaxBatchSize"] = "8",
        ["Batching:MaxBatchDelayMs"] = "5",
    };

    private readonly Action<IServiceCollection>? _services;
    private GrpcChannel? _channel;

    public ServerFactory()
        : this(new Dictionary<string, string?>())
    {
    }

    internal ServerFactory(IReadOnlyDictionary<string, string?> settings, Action<IServiceCollection>? services = null)
    {
        _services = services;
        foreach (var (key, value) in settings)
        {
            _settings[key] = value;
        }
    }

    public GrpcChannel Channel => _channel ??= GrpcChannel.ForAddress(Server.BaseAddress, new GrpcChannelOptions
    {
        HttpHandler = Server.CreateHandler(),
        MaxReceiveMessageSize = null,
        MaxSendMessageSize = null,
    });

    public VideoMatcher.VideoMatcherClient Client => new(Channel);

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        if (_services is not null)
        {
            builder.ConfigureTestServices(_services);
        }
    }

    protected override void Dispose(bool disposing)
    {
        _channel?.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>The real server on a loopback port (Kestrel, HTTP/2, TLS when configured), for what the in-memory host cannot show.</summary>
public sealed class LoopbackServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private LoopbackServer(WebApplication app) => _app = app;

    public Uri Address => new(_app.Urls.First());

    public IServiceProvider Services => _app.Services;

    public static async Task<LoopbackServer> StartAsync(bool https = false, params string[] settings)
    {
        var app = ServerApp.Build([
            "--urls", https ? "https://127.0.0.1:0" : "http://127.0.0.1:0",
            "--Logging:LogLevel:Default", "Warning",
            $"--Inference:EmbeddedWidth={ServerFactory.ModelWidth}",
            $"--Inference:EmbeddedHeight={ServerFactory.ModelHeight}",
            "--Inference:WarmUp=false",
            "--Metrics:Url=",
            .. settings,
        ]);
        await app.StartAsync();
        return new LoopbackServer(app);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

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

    public static Matrix3x2 View(Vector2 offset) => Matrix3x2.CreateTranslation(60 + offset.X, 40 + offset.Y);

    /// <summary>Image content moves opposite to the camera: a point at p in frame a is at p + (offset_a − offset_b) in frame b.</summary>
    public static Vector2 Motion(Vector2 offsetA, Vector2 offsetB) => offsetA - offsetB;
}

public static class MatchAssertions
{
    /// <summary>Asserts that most matches move by <paramref name="expected"/> within <paramref name="tolerance"/> pixels.</summary>
    public static void RecoversMotion(Matches matches, Vector2 expected, float tolerance = 1f, double share = 0.9, int minimum = 200)
    {
        Assert.True(matches.Count >= minimum, $"only {matches.Count} matches");
        Assert.Equal((int)matches.Count * 2, matches.Keypoints0.Count);
        Assert.Equal((int)matches.Count * 2, matches.Keypoints1.Count);
        Assert.Equal((int)matches.Count, matches.Scores.Count);
        var good = 0;
        var dx = new float[matches.Count];
        var dy = new float[matches.Count];
        for (var i = 0; i < matches.Count; i++)
        {
            dx[i] = matches.Keypoints1[2 * i] - matches.Keypoints0[2 * i];
            dy[i] = matches.Keypoints1[2 * i + 1] - matches.Keypoints0[2 * i + 1];
            good += Vector2.Distance(new Vector2(dx[i], dy[i]), expected) < tolerance ? 1 : 0;
        }

        Array.Sort(dx);
        Array.Sort(dy);
        var median = new Vector2(dx[dx.Length / 2], dy[dy.Length / 2]);
        Assert.True(Vector2.Distance(median, expected) < tolerance, $"median motion {median}, expected {expected}");
        Assert.True(good >= share * matches.Count, $"{good}/{matches.Count} matches within {tolerance} px of {expected}");
        for (var i = 1; i < matches.Count; i++)
        {
            Assert.True(matches.Scores[i - 1] >= matches.Scores[i], "matches are sorted by score, highest first");
        }
    }
}
