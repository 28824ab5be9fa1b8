using OpenCvSharp;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Eval;

/// <summary>Matches two RGB24 frames into x, y point lists of equal length.</summary>
internal interface IEvalMatcher : IDisposable
{
    string Name { get; }

    (float[] Points0, float[] Points1) Match(Mat frame0, Mat frame1);
}

/// <summary>A model the server serves, run in-process through the engine (same preprocessing and post-processing).</summary>
internal sealed class EngineMatcher : IEvalMatcher
{
    private readonly IPairMatcher _matcher;
    private readonly FramePreparer _preparer;

    /// <param name="modelPath">Empty: the embedded model at 640×480; otherwise a model folder.</param>
    public EngineMatcher(string name, string modelPath)
    {
        Name = name;
        _matcher = ModelLoader.Open(new InferenceOptions { ModelPath = modelPath }, 1);
        var input = _matcher.Manifest.Input;
        _preparer = new FramePreparer(input.Width, input.Height, 8192, input.RotateToFit, elementType: _matcher.FrameType);
    }

    public string Name { get; }

    public (float[] Points0, float[] Points1) Match(Mat frame0, Mat frame1)
    {
        var pair = new PairInput(Prepare(frame0), Prepare(frame1), _matcher.Manifest.DefaultThreshold, 0);
        var results = new PairMatchResult[1];
        try
        {
            _matcher.Match([pair], results);
        }
        finally
        {
            pair.Frame0.Release();
            pair.Frame1.Release();
        }

        return (results[0].Keypoints0, results[0].Keypoints1);
    }

    public void Dispose() => _matcher.Dispose();

    private PreparedFrame Prepare(Mat frame) =>
        _preparer.Prepare(FrameInput.Raw(FramePixelFormat.Rgb24, frame.Width, frame.Height, 0, Frames.Bytes(frame)));
}

/// <summary>The classical baseline: OpenCV ORB (2,000 features) with cross-checked Hamming brute-force matching.</summary>
internal sealed class OrbMatcher : IEvalMatcher
{
    private readonly ORB _orb = ORB.Create(2000);
    private readonly BFMatcher _matcher = new(NormTypes.Hamming, crossCheck: true);

    public string Name => "OpenCV ORB + RANSAC (baseline)";

    public (float[] Points0, float[] Points1) Match(Mat frame0, Mat frame1)
    {
        var (keys0, descriptors0) = Detect(frame0);
        var (keys1, descriptors1) = Detect(frame1);
        using (descriptors0)
        using (descriptors1)
        {
            if (keys0.Length == 0 || keys1.Length == 0)
            {
                return ([], []);
            }

            var matches = _matcher.Match(descriptors0, descriptors1);
            var points0 = new float[2 * matches.Length];
            var points1 = new float[2 * matches.Length];
            for (var i = 0; i < matches.Length; i++)
            {
                var (a, b) = (keys0[matches[i].QueryIdx].Pt, keys1[matches[i].TrainIdx].Pt);
                (points0[2 * i], points0[(2 * i) + 1], points1[2 * i], points1[(2 * i) + 1]) = (a.X, a.Y, b.X, b.Y);
            }

            return (points0, points1);
        }
    }

    public void Dispose()
    {
        _matcher.Dispose();
        _orb.Dispose();
    }

    private (KeyPoint[] Keys, Mat Descriptors) Detect(Mat frame)
    {
        using var gray = new Mat();
        Cv2.CvtColor(frame, gray, ColorConversionCodes.RGB2GRAY);
        var descriptors = new Mat();
        _orb.DetectAndCompute(gray, null, out var keys, descriptors);
        return (keys, descriptors);
    }
}
