fn main() {
    let a: Vec<String> = std::env::args().collect();
    let img = faceprint::imageio::open(std::path::Path::new(&a[1]), &Default::default()).unwrap();
    std::fs::write(&a[2], img.image.as_raw()).unwrap();
    println!("{} {}", img.image.width(), img.image.height());
}
