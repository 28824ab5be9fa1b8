using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using Google.Protobuf;
using Grpc.Net.Client;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;
using VideoMatch.Synthetic;
using VideoMatch.Server;

// Usage: dotnet run -c Release --project tools/VideoMatch.Benchmarks [-- --pairs N --width W --height H --batch B --streams S --model DIR
//          --provider cpu|cuda --cudnn Exhaustive|Heuristic|Default --nhwc --precision fp32|fp16 --json FILE --matching-only]
//        dotnet run -c Release --project tools/VideoMatch.Benchmarks -- ingest [--streams S --seconds T]
//        dotnet run -c Release --project tools/VideoMatch.Benchmarks -- preprocess
//        dotnet run -c Release --project tools/VideoMatch.Benchmarks -- memory [--width W --height H --batch B]
//        dotnet run -c Release --project tools/VideoMatch.Benchmarks -- load [--model DIR --provider P --precision X --batch B --streams S --fps F --seconds T --json FILE]
var settings = Settings.Parse(args);
if (args.FirstOrDefault() == "load")
{
    await Load.RunAsync(settings, Array.IndexOf(args, "--fps") is var fps && fps >= 0 && fps + 1 < args.Length
        ? double.Parse(args[fps + 1], CultureInfo.InvariantCulture) : 30);
    return;
}

if (args.FirstOrDefault() == "memory")
{
    Memory.Run(settings with { Batch = Array.IndexOf(args, "--batch") >= 0 ? settings.Batch : 16 });
    return;
}

if (args.FirstOrDefault() == "memory-one")
{
    Memory.RunOne(settings, args[Array.IndexOf(args, "--arena") + 1] == "1", args[Array.IndexOf(args, "--pattern") + 1] == "1");
    return;
}

if (args.FirstOrDefault() == "ingest")
{
    await Ingest.RunAsync(settings);
    return;
}

if (args.FirstOrDefault() == "preprocess")
{
    Preprocessing.Run(settings);
    return;
}

Console.WriteLine($"# VideoMatch benchmark, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {RuntimeInformationText()}");
if (settings.Model is { } folder)
{
    // A model folder (an EfficientLoFTR export, say) decides the input size.
    var manifest = ModelManifest.Load(folder);
    settings = settings with { Width = manifest.Input.Width, Height = manifest.Input.Height };
}

Console.WriteLine($"model: {(settings.Model is null ? "embedded" : settings.Model)} {settings.Width}×{settings.Height}, batch {settings.Batch}, {settings.Streams} streams, {settings.Pairs} pairs per measurement, {settings.Provider} {settings.Precision}{(settings.Provider == "cuda" ? $", cuDNN {settings.Cudnn}{(settings.Nhwc ? ", NHWC" : "")}" : "")}");
Console.WriteLine();

if (!settings.MatchingOnly)
{
    Preprocessing.Run(settings);
}

await Matching.RunAsync(settings);

static string RuntimeInformationText() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;

internal sealed record Settings(int Pairs, int Width, int Height, int Batch, int Streams, int Seconds, string? Model = null)
{
    /// <summary><c>cpu</c> or <c>cuda</c> (Inference:ExecutionProvider).</summary>
    public string Provider { get; init; } = "cpu";

    /// <summary><c>cuda</c>: Inference:CudnnConvAlgoSearch.</summary>
    public string Cudnn { get; init; } = "Exhaustive";

    /// <summary><c>cuda</c>: Inference:PreferNhwc.</summary>
    public bool Nhwc { get; init; }

    /// <summary>Inference:Precision (<c>fp16</c> serves an export's fp16 graph).</summary>
    public string Precision { get; init; } = "fp32";

    /// <summary>Also write the matching rows as JSON here (tools/bench-gpu reads it).</summary>
    public string? Json { get; init; }

    /// <summary>Skip the preprocessing table (tools/bench-gpu runs one configuration after another).</summary>
    public bool MatchingOnly { get; init; }

    public InferenceOptions Inference(bool useSplit) => new()
    {
        EmbeddedWidth = Width,
        EmbeddedHeight = Height,
        ModelPath = Model ?? "",
        UseSplit = useSplit,
        ExecutionProvider = Provider,
        CudnnConvAlgoSearch = Cudnn,
        PreferNhwc = Nhwc,
        Precision = Precision,
    };

    /// <summary>The in-process server's settings for this run: loopback port 0, no side port, warnings only.</summary>
    public string[] ServerArguments(bool useSplit = true) =>
    [
        "--urls", "http://127.0.0.1:0",
        "--Metrics:Url=",
        "--Logging:LogLevel:Default", "Warning",
        $"--Inference:EmbeddedWidth={Width}",
        $"--Inference:EmbeddedHeight={Height}",
        $"--Inference:ModelPath={Model ?? ""}",
        $"--Inference:UseSplit={useSplit}",
        $"--Inference:ExecutionProvider={Provider}",
        $"--Inference:CudnnConvAlgoSearch={Cudnn}",
        $"--Inference:PreferNhwc={Nhwc}",
        $"--Inference:Precision={Precision}",
        $"--Batching:MaxBatchSize={Batch}",
    ];

    public static Settings Parse(string[] args)
    {
        int Get(string name, int fallback)
        {
            var at = Array.IndexOf(args, name);
            return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
        }

        string? Text(string name) => Array.IndexOf(args, name) is var at && at >= 0 && at + 1 < args.Length ? args[at + 1] : null;

        var model = Text("--model") is { } folder ? Path.GetFullPath(folder) : null;
        return new Settings(Get("--pairs", 48), Get("--width", 640), Get("--height", 480), Get("--batch", 4), Get("--streams", 4), Get("--seconds", 5), model)
        {
            Provider = Text("--provider") ?? "cpu",
            Cudnn = Text("--cudnn") ?? "Exhaustive",
            Nhwc = args.Contains("--nhwc"),
            Precision = Text("--precision") ?? "fp32",
            Json = Text("--json") is { } json ? Path.GetFullPath(json) : null,
            MatchingOnly = args.Contains("--matching-only"),
        };
    }
}

/// <summary>Preprocessing rate on one thread (so the figure is per core) and its allocations per frame.</summary>
internal static class Preprocessing
{
    public static void Run(Settings settings)
    {
        Console.WriteLine("| preprocessing, one thread | frames/s | allocated bytes/frame |");
        Console.WriteLine("|---|---|---|");
        // Frames are prepared in the model's input type: floats for a float graph, bytes for a uint8 one.
        foreach (var type in new[] { InputElementType.Float32, InputElementType.UInt8 })
        {
            var preparer = new FramePreparer(settings.Width, settings.Height, 8192, elementType: type);
            var into = type == InputElementType.UInt8 ? "uint8" : "float32";
            Measure(preparer, $"1280×720 RGB24 → gray {into}", Frame(FramePixelFormat.Rgb24, 1280, 720));
            Measure(preparer, $"1920×1080 RGB24 → gray {into}", Frame(FramePixelFormat.Rgb24, 1920, 1080));
            Measure(preparer, $"720×480 GRAY8 → {into}", Frame(FramePixelFormat.Gray8, 720, 480));
            Measure(preparer, $"{settings.Width}×{settings.Height} GRAY8 (pre-resized) → {into}", Frame(FramePixelFormat.Gray8, settings.Width, settings.Height));
        }

        Console.WriteLine();
        JpegDecode();
    }

    /// <summary>
    /// Decoding one 1280×720 JPEG (quality 90) on one thread: SkiaSharp to RGBA, the decoder the server used before
    /// it refused damaged JPEGs, beside libjpeg-turbo's TurboJPEG to RGB with every warning checked (the server's now).
    /// </summary>
    private static void JpegDecode()
    {
        var rgb = Frame(FramePixelFormat.Rgb24, 1280, 720).Data.ToArray();
        var rgba = new byte[1280 * 720 * 4];
        for (var i = 0; i < 1280 * 720; i++)
        {
            (rgba[4 * i], rgba[(4 * i) + 1], rgba[(4 * i) + 2], rgba[(4 * i) + 3]) = (rgb[3 * i], rgb[(3 * i) + 1], rgb[(3 * i) + 2], 255);
        }

        byte[] jpeg;
        using (var bitmap = new SkiaSharp.SKBitmap(new SkiaSharp.SKImageInfo(1280, 720, SkiaSharp.SKColorType.Rgba8888, SkiaSharp.SKAlphaType.Unpremul)))
        {
            System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
            using var data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 90);
            jpeg = data.ToArray();
        }

        var target = new byte[1280 * 720 * 4];
        var skia = Rate(() =>
        {
            using var codec = SkiaSharp.SKCodec.Create(new SkiaSharp.SKMemoryStream(jpeg));
            var info = new SkiaSharp.SKImageInfo(1280, 720, SkiaSharp.SKColorType.Rgba8888, SkiaSharp.SKAlphaType.Unpremul);
            unsafe
            {
                fixed (byte* pixels = target)
                {
                    _ = codec.GetPixels(info, (IntPtr)pixels);
                }
            }
        });
        var turbo = Rate(() =>
        {
            using var decoded = ImageDecoder.Decode(FrameEncoding.Jpeg, jpeg, 8192);
        });
        Console.WriteLine($"| JPEG decode, one thread, 1280×720 q90 ({jpeg.Length / 1024} KiB) | ms/frame |");
        Console.WriteLine("|---|---|");
        Console.WriteLine($"| SkiaSharp → RGBA (before) | {skia:F2} |");
        Console.WriteLine($"| TurboJPEG → RGB, warnings refused (now) | {turbo:F2} |");
        Console.WriteLine($"| now / before | {turbo / skia:F2} |");
        Console.WriteLine();
    }

    /// <summary>Milliseconds per call, interleaving nothing: 20 warm-up calls, then 200 timed.</summary>
    private static double Rate(Action decode)
    {
        for (var i = 0; i < 20; i++)
        {
            decode();
        }

        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < 200; i++)
        {
            decode();
        }

        return Stopwatch.GetElapsedTime(started).TotalMilliseconds / 200;
    }

    private static void Measure(FramePreparer preparer, string name, FrameInput input)
    {
        for (var i = 0; i < 50; i++)
        {
            preparer.Prepare(input).Release();
        }

        const int frames = 600;
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < frames; i++)
        {
            preparer.Prepare(input).Release();
        }

        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var bytes = (GC.GetAllocatedBytesForCurrentThread() - allocated) / (double)frames;
        Console.WriteLine($"| {name} | {frames / seconds:F0} | {bytes:F0} |");
    }

    internal static FrameInput Frame(FramePixelFormat format, int width, int height)
    {
        var scene = new TexturedScene(seed: 1);
        if (format == FramePixelFormat.Gray8)
        {
            var gray = new byte[width * height];
            scene.RenderGray(width, height, Matrix3x2.Identity, gray);
            return FrameInput.Raw(format, width, height, 0, gray);
        }

        var rgb = new byte[width * height * 3];
        scene.RenderRgb(width, height, Matrix3x2.Identity, rgb);
        return FrameInput.Raw(format, width, height, 0, rgb);
    }
}

/// <summary>
/// The same model, measured in one process: its matcher called directly with full batches of a stream's pairs
/// (t−1, t), each frame a new one as a camera sends it, and the whole server (loopback HTTP/2, gRPC, per-stream
/// sessions, batcher) driven by concurrent streams. An export with a stream split is measured both ways: the
/// whole-pair graph, and the split (each frame encoded once into the frame bank).
/// </summary>
internal static class Matching
{
    public static async Task RunAsync(Settings settings)
    {
        var split = settings.Model is { } folder && ModelManifest.Load(folder).HasSplit();
        Console.WriteLine("| path | graph | pairs/s | ms/pair | allocated bytes/pair | notes |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var rows = new List<(string Graph, double Raw, double Server)>();
        foreach (var useSplit in split ? new[] { false, true } : [false])
        {
            var graph = useSplit ? "split" : "whole pair";
            var raw = RawSession(settings, useSplit);
            var server = await ServerAsync(settings, useSplit);
            Console.WriteLine($"| raw matcher (IPairMatcher.Match, batch {settings.Batch}, stream pairs) | {graph} | {raw.PairsPerSecond:F2} | {1000 / raw.PairsPerSecond:F0} | {raw.BytesPerPair:F0} | {raw.Notes} |");
            Console.WriteLine($"| full server over gRPC ({settings.Streams} streams, {settings.Width}×{settings.Height} GRAY8 frames) | {graph} | {server.PairsPerSecond:F2} | {1000 / server.PairsPerSecond:F0} | {server.BytesPerPair:F0} | whole process incl. the client; mean batch {server.MeanBatch:F1}, p50 latency {server.P50Ms:F0} ms |");
            rows.Add((graph, raw.PairsPerSecond, server.PairsPerSecond));
        }

        Console.WriteLine();
        foreach (var (graph, raw, server) in rows)
        {
            Console.WriteLine($"{graph}: server / raw matcher = {server / raw:F3}");
        }

        if (settings.Json is { } json)
        {
            var written = rows.Select(r => new Dictionary<string, object>
            {
                ["graph"] = r.Graph, ["batch"] = settings.Batch, ["provider"] = settings.Provider, ["precision"] = settings.Precision,
                ["cudnn"] = settings.Cudnn, ["nhwc"] = settings.Nhwc, ["raw_pairs_per_s"] = r.Raw, ["server_pairs_per_s"] = r.Server,
            });
            await File.WriteAllTextAsync(json, System.Text.Json.JsonSerializer.Serialize(written));
        }

        if (rows.Count == 2)
        {
            Console.WriteLine($"split / whole pair, time per pair (raw matcher) = {rows[0].Raw / rows[1].Raw:F3}");
        }
    }

    private static (double PairsPerSecond, double BytesPerPair, string Notes) RawSession(Settings settings, bool useSplit)
    {
        var options = settings.Inference(useSplit);
        using var matcher = ModelLoader.Open(options, settings.Batch);
        var preparer = new FramePreparer(settings.Width, settings.Height, 8192, elementType: matcher.FrameType);
        var input = Preprocessing.Frame(FramePixelFormat.Gray8, settings.Width, settings.Height);
        var results = new PairMatchResult[settings.Batch];
        var batch = new PairInput[settings.Batch];
        var previous = preparer.Prepare(input);

        // One stream's pairs (t−1, t), B at a time; every frame is new (a camera's next frame), released after its pairs.
        void RunBatch()
        {
            var frames = new PreparedFrame[settings.Batch + 1];
            frames[0] = previous;
            for (var i = 1; i <= settings.Batch; i++)
            {
                frames[i] = preparer.Prepare(input);
                batch[i - 1] = new PairInput(frames[i - 1], frames[i], 0.2f, 0);
            }

            matcher.Match(batch, results);
            for (var i = 0; i < settings.Batch; i++)
            {
                frames[i].Release();
            }

            previous = frames[settings.Batch];
        }

        // As many warm-up pairs as the server path gets (its start-up warm-up plus the short first drive).
        for (var i = 0; i < 3; i++)
        {
            RunBatch();
        }

        var encodedBefore = matcher.Work.FramesEncoded;
        var batches = Math.Max(1, settings.Pairs / settings.Batch);
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var started = Stopwatch.GetTimestamp();
        for (var b = 0; b < batches; b++)
        {
            RunBatch();
        }

        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var bytes = (GC.GetTotalAllocatedBytes(precise: true) - allocated) / (double)(batches * settings.Batch);
        var encoded = matcher.Work.FramesEncoded - encodedBefore;
        var notes = matcher is SplitPairMatcher split
            ? $"{encoded} frames encoded for {batches * settings.Batch} pairs; frame bank {split.Bank.Slots} slots of {split.Bank.BytesPerSlot / 1e6:F1} MB"
            : "copy-in, run, post-processing";
        previous.Release();
        return (batches * settings.Batch / seconds, bytes, notes);
    }

    private static async Task<(double PairsPerSecond, double BytesPerPair, double MeanBatch, double P50Ms)> ServerAsync(Settings settings, bool useSplit)
    {
        await using var app = ServerApp.Build([.. settings.ServerArguments(useSplit), "--Batching:MaxBatchDelayMs=20"]);
        await app.StartAsync();
        using var channel = GrpcChannel.ForAddress(app.Urls.First());
        var client = new VideoMatcher.VideoMatcherClient(channel);

        var scene = new TexturedScene(seed: 2);
        var frames = Enumerable.Range(0, 4).Select(i =>
        {
            var gray = new byte[settings.Width * settings.Height];
            scene.RenderGray(settings.Width, settings.Height, Matrix3x2.CreateTranslation(i * 1.5f, i), gray);
            return new Image { Raw = new RawImage { Format = PixelFormat.Gray8, Width = (uint)settings.Width, Height = (uint)settings.Height, Data = ByteString.CopyFrom(gray) } };
        }).ToArray();

        // A short run first, so connection set-up and first-batch effects stay out of the figure.
        await DriveAsync(client, frames, settings.Streams, 2);
        var perStream = Math.Max(2, settings.Pairs / settings.Streams);
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var started = Stopwatch.GetTimestamp();
        var responses = await DriveAsync(client, frames, settings.Streams, perStream);
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var bytes = (GC.GetTotalAllocatedBytes(precise: true) - allocated) / (double)responses.Count;
        await app.StopAsync();

        var latencies = responses.Select(r => (double)(r.Timings.QueueWaitMs + r.Timings.InferenceMs)).Order().ToArray();
        return (responses.Count / seconds, bytes, responses.Average(r => r.Timings.BatchSize), latencies[latencies.Length / 2]);
    }

    private static async Task<List<PairMatches>> DriveAsync(VideoMatcher.VideoMatcherClient client, Image[] frames, int streams, int pairsPerStream)
    {
        var runs = Enumerable.Range(0, streams).Select(async s =>
        {
            using var call = client.MatchStream();
            var pairs = new List<PairMatches>();
            var reading = Task.Run(async () =>
            {
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                    if (call.ResponseStream.Current.Pair is { } pair)
                    {
                        pairs.Add(pair);
                    }
                }
            });
            await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig { StreamName = $"bench-{s}" } });
            for (var i = 0; i <= pairsPerStream; i++)
            {
                await call.RequestStream.WriteAsync(new StreamRequest { Frame = new Frame { Sequence = (ulong)i, Image = frames[(i + s) % frames.Length] } });
            }

            await call.RequestStream.CompleteAsync();
            await reading;
            return pairs;
        });
        return (await Task.WhenAll(runs)).SelectMany(p => p).ToList();
    }
}
