using System.Buffers;
using Microsoft.ML.OnnxRuntime;
using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// XFeat + LighterGlue on ONNX Runtime: the sparse extractor runs once per frame and its keypoints and descriptors
/// stay with the frame (<see cref="PreparedFrame.Features"/>), so a stream frame shared by pairs (t−1, t) and
/// (t, t+1), or a keyframe shared by many pairs, is extracted once; the matcher runs per pair.
/// </summary>
/// <remarks>
/// Both graphs take one image or one pair at a time (their batch dimension is fixed at 1), so a batch runs as a
/// loop. The extractor takes RGB in [0, 1] and averages the channels itself, so the gray plane is fed to all three.
/// LighterGlue wants keypoints normalised as (k − [W/2, H/2]) / (max(W, H) / 2).
/// </remarks>
public sealed class XFeatLighterGlueMatcher : OrtMatcher
{
    private readonly InferenceSession _extractor;
    private readonly InferenceSession _matcher;
    private readonly float[] _image;
    private readonly OrtValue _imageValue;
    private readonly string[] _imageNames;
    private readonly string[] _featureNames;
    private readonly string[] _pairNames;
    private readonly string[] _matchNames;
    private readonly int _descriptorLength;
    private readonly MatchSelector _selector = new();
    private static readonly Features NoFeatures = new(0, [], [], []);
    private readonly int _plane;

    private XFeatLighterGlueMatcher(ModelManifest manifest, (GraphSpec Extractor, GraphSpec Matcher) graphs, OrtResources resources, InferenceSession extractor, InferenceSession matcher, int maxBatchSize)
        : base(manifest, resources, maxBatchSize)
    {
        _extractor = extractor;
        _matcher = matcher;
        _plane = manifest.Input.Width * manifest.Input.Height;
        _image = GC.AllocateArray<float>(3 * _plane, pinned: true);
        _imageValue = Own(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _image.AsMemory(), [1, 3, manifest.Input.Height, manifest.Input.Width]));
        _imageNames = [graphs.Extractor.Inputs[0].Name];
        _featureNames = [graphs.Extractor.Outputs[0].Name, graphs.Extractor.Outputs[1].Name];
        _pairNames = [.. graphs.Matcher.Inputs.Select(t => t.Name)];
        _matchNames = [graphs.Matcher.Outputs[0].Name, graphs.Matcher.Outputs[1].Name];
        _descriptorLength = (int)graphs.Extractor.Outputs[1].Shape[^1].Size;
    }

    /// <summary>Extractor runs so far: one per frame, however many pairs the frame is part of.</summary>
    public long FramesExtracted => Work.FramesEncoded;

    /// <summary>
    /// The manifest for the published pair (extractor <c>xfeat_*.onnx</c> with input [1, 3, H, W], matcher
    /// <c>lighterglue*.onnx</c>) found in <paramref name="folder"/>, or null when the folder holds no such pair.
    /// </summary>
    public static ModelManifest? Discover(string folder)
    {
        if (!Directory.Exists(folder))
        {
            return null;
        }

        var extractors = Directory.GetFiles(folder, "xfeat*.onnx");
        var matchers = Directory.GetFiles(folder, "lighterglue*.onnx");
        if (extractors.Length != 1 || matchers.Length != 1)
        {
            return null;
        }

        using var session = new InferenceSession(extractors[0]);
        var (name, input) = session.InputMetadata.First();
        if (input.Dimensions.Length != 4 || input.Dimensions[1] != 3 || input.Dimensions[2] <= 0 || input.Dimensions[3] <= 0)
        {
            throw new InvalidDataException($"'{extractors[0]}' takes input '{name}' of shape [{string.Join(", ", input.Dimensions)}]; an XFeat extractor with a fixed [1, 3, H, W] input is needed.");
        }

        var maxKeypoints = 2048;
        var digits = new string(Path.GetFileNameWithoutExtension(extractors[0]).SkipWhile(c => !char.IsAsciiDigit(c)).TakeWhile(char.IsAsciiDigit).ToArray());
        if (int.TryParse(digits, System.Globalization.CultureInfo.InvariantCulture, out var parsed) && parsed > 0)
        {
            maxKeypoints = parsed;
        }

        var (extractor, matcher) = ModelContracts.XFeat(Path.GetFileName(extractors[0]), name, input.Dimensions[3], input.Dimensions[2], Path.GetFileName(matchers[0]));
        return new ModelManifest
        {
            Name = $"xfeat-lighterglue ({extractor.File} + {matcher.File})",
            Family = ModelFamily.XFeatLighterGlue,
            Graphs = [extractor, matcher],
            MaxKeypoints = maxKeypoints,
            Input = new ModelInputManifest { Width = input.Dimensions[3], Height = input.Dimensions[2], Channels = 3, RotateToFit = true },
            // LighterGlue's scores run low; 0.1 keeps the confident matches of real pairs.
            DefaultThreshold = 0.1f,
            SourceFile = Path.Combine(Path.GetFullPath(folder), ModelManifest.FileName),
        };
    }

    /// <exception cref="InvalidOperationException">The provider cannot start or a model does not fit the manifest.</exception>
    public static XFeatLighterGlueMatcher Create(ModelManifest manifest, InferenceOptions options, int maxBatchSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBatchSize);
        manifest.Validate(manifest.Name);
        var graphs = (Extractor: manifest.Graph(GraphRole.Extractor)!, Matcher: manifest.Graph(GraphRole.Matcher)!);
        var (extractorPath, matcherPath) = (manifest.PathOf(graphs.Extractor), manifest.PathOf(graphs.Matcher));
        return Build(options, resources => new XFeatLighterGlueMatcher(manifest, graphs, resources,
            resources.Session(File.ReadAllBytes(extractorPath), graphs.Extractor, manifest), resources.Session(File.ReadAllBytes(matcherPath), graphs.Matcher, manifest), maxBatchSize));
    }

    /// <summary>The extractor takes float frames in [0, 1].</summary>
    public override InputElementType FrameType => InputElementType.Float32;

    public override void Match(ReadOnlySpan<PairInput> batch, Span<PairMatchResult> results)
    {
        CheckBatch(batch.Length);

        for (var i = 0; i < batch.Length; i++)
        {
            var pair = batch[i];
            var features0 = Extract(pair.Frame0);
            var features1 = Extract(pair.Frame1);
            results[i] = MatchPair(features0, features1, pair);
            Work.Matched(1);
        }
    }

    private Features Extract(PreparedFrame frame)
    {
        if (frame.Features is Features cached)
        {
            return cached;
        }

        var pixels = frame.Floats(_plane);
        for (var c = 0; c < 3; c++)
        {
            pixels.CopyTo(_image.AsSpan(c * _plane, _plane));
        }

        Work.Encoded(1);
        IDisposableReadOnlyCollection<OrtValue> outputs;
        try
        {
            outputs = _extractor.Run(RunOptions, _imageNames, [_imageValue], _featureNames);
        }
        catch (OnnxRuntimeException e) when (FoundNoPoints(e))
        {
            frame.Features = NoFeatures;
            return NoFeatures;
        }

        using var owned = outputs;
        var keypoints = owned[0].GetTensorDataAsSpan<float>().ToArray();
        var descriptors = owned[1].GetTensorDataAsSpan<float>().ToArray();
        var count = keypoints.Length / 2;
        if (descriptors.Length != count * _descriptorLength)
        {
            throw new InvalidOperationException($"The extractor returned {count} keypoints but {descriptors.Length} descriptor values; {_descriptorLength} per keypoint were expected.");
        }

        if (frame.Mapping.Letterboxed)
        {
            (count, keypoints, descriptors) = OnContent(frame.Mapping, count, keypoints, descriptors);
        }

        var width = Manifest.Input.Width;
        var height = Manifest.Input.Height;
        var normalised = new float[keypoints.Length];
        var half = MathF.Max(width, height) / 2f;
        for (var k = 0; k < count; k++)
        {
            normalised[2 * k] = (keypoints[2 * k] - width / 2f) / half;
            normalised[2 * k + 1] = (keypoints[2 * k + 1] - height / 2f) / half;
        }

        var features = new Features(count, keypoints, normalised, descriptors);
        frame.Features = features;
        return features;
    }

    /// <summary>
    /// The published extractor fails, instead of returning none, when no point passes its detection threshold (a flat
    /// or dark frame): a broadcast over the empty keypoint set. ONNX Runtime gives that failure no type or code of its
    /// own (every run failure is an <see cref="OnnxRuntimeException"/>), so this is the one place that reads a native
    /// message; <c>XFeatLighterGlueTests.Match_BlankFrame_*</c> pins it, so a runtime that words it otherwise fails a
    /// test rather than every blank frame.
    /// </summary>
    private static bool FoundNoPoints(OnnxRuntimeException e) => e.Message.Contains("Can broadcast 0", StringComparison.Ordinal);

    private PairMatchResult MatchPair(Features features0, Features features1, PairInput pair)
    {
        if (features0.Count == 0 || features1.Count == 0)
        {
            return PairMatchResult.Empty;
        }

        using var kpts0 = OrtValue.CreateTensorValueFromMemory(features0.Normalised, [1, features0.Count, 2]);
        using var kpts1 = OrtValue.CreateTensorValueFromMemory(features1.Normalised, [1, features1.Count, 2]);
        using var desc0 = OrtValue.CreateTensorValueFromMemory(features0.Descriptors, [1, features0.Count, _descriptorLength]);
        using var desc1 = OrtValue.CreateTensorValueFromMemory(features1.Descriptors, [1, features1.Count, _descriptorLength]);
        using var outputs = _matcher.Run(RunOptions, _pairNames, [kpts0, kpts1, desc0, desc1], _matchNames);
        var matches = outputs[0].GetTensorDataAsSpan<long>();
        var scores = outputs[1].GetTensorDataAsSpan<float>();

        // LighterGlue's matches are mutual, so each image-0 keypoint starts at most one: candidates by image-0 keypoint.
        var partners = ArrayPool<int>.Shared.Rent(features0.Count);
        var byPoint = ArrayPool<float>.Shared.Rent(features0.Count);
        try
        {
            partners.AsSpan(0, features0.Count).Fill(-1);
            for (var m = 0; m < scores.Length; m++)
            {
                var (i0, i1) = (matches[2 * m], matches[2 * m + 1]);
                if (i0 >= 0 && i0 < features0.Count && i1 >= 0 && i1 < features1.Count)
                {
                    (partners[i0], byPoint[i0]) = ((int)i1, scores[m]);
                }
            }

            var candidates = new PointMatches(partners.AsSpan(0, features0.Count), byPoint, features0.Keypoints, features1.Keypoints);
            return _selector.Select(candidates, pair.Threshold, pair.MaxMatches, pair.Frame0.Mapping, pair.Frame1.Mapping);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(partners);
            ArrayPool<float>.Shared.Return(byPoint);
        }
    }

    /// <summary>The keypoints (and their descriptors) that lie on the frame's own pixels, not on letterbox padding.</summary>
    private (int Count, float[] Keypoints, float[] Descriptors) OnContent(FrameMapping mapping, int count, float[] keypoints, float[] descriptors)
    {
        var kept = 0;
        for (var k = 0; k < count; k++)
        {
            if (!mapping.Covers(keypoints[2 * k], keypoints[2 * k + 1]))
            {
                continue;
            }

            keypoints[2 * kept] = keypoints[2 * k];
            keypoints[2 * kept + 1] = keypoints[2 * k + 1];
            Array.Copy(descriptors, k * _descriptorLength, descriptors, kept * _descriptorLength, _descriptorLength);
            kept++;
        }

        return (kept, keypoints[..(2 * kept)], descriptors[..(kept * _descriptorLength)]);
    }

    /// <summary>One frame's extractor output: keypoints in input pixels, the same normalised for LighterGlue, descriptors.</summary>
    private sealed record Features(int Count, float[] Keypoints, float[] Normalised, float[] Descriptors) : IFrameFeatures
    {
        /// <summary>Managed arrays only: nothing to give back.</summary>
        public void Dispose()
        {
        }
    }
}
